import{j as e,d as r}from"./index-BtJ4-ujf.js";function s(){return e.jsx(r,{order:2,children:"Tokens"})}export{s as default};
