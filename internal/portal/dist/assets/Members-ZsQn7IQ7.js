import{j as e,T as r}from"./index-C5ChdGh-.js";function t(){return e.jsx(r,{order:2,children:"Members"})}export{t as default};
