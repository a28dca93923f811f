import{j as r,T as s}from"./index-C5ChdGh-.js";function e(){return r.jsx(s,{order:2,children:"Orgs"})}export{e as default};
