import{j as e,T as t}from"./index-C5ChdGh-.js";function i(){return e.jsx(t,{order:2,children:"CreateSite"})}export{i as default};
